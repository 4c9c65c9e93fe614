//! Root integration test: 50 containers created, started and deleted at once
//! leave nothing behind.

mod common;

use common::{assert_nothing_left, Bundle, Runtime};

#[test]
fn fifty_containers_in_parallel() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sleep", "100"]);
    let ids: Vec<String> = (0..50).map(|i| common::id(&format!("par{i}"))).collect();
    std::thread::scope(|s| {
        for id in &ids {
            let rt = &rt;
            let b = &b;
            s.spawn(move || {
                rt.ok(&["create", "--bundle", b.path().to_str().unwrap(), id]);
                rt.ok(&["start", id]);
                rt.ok(&["delete", "--force", id]);
            });
        }
    });
    for id in &ids {
        assert_nothing_left(&rt, id, &b);
    }
}
