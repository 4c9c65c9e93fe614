//! Reproducible builds: with SOURCE_DATE_EPOCH the same context gives the
//! same image id and layer digests in any store, with or without the cache,
//! whichever runtime runs the RUN steps.

mod common;

use common::{Base, Status, Store};
use serde_json::Value;

const EPOCH: &str = "1700000000";

fn digests(image: &Value) -> (Vec<Value>, Vec<Value>) {
    let layers = image["Layers"]
        .as_array()
        .map(|l| l.iter().map(|d| d["digest"].clone()).collect())
        .unwrap_or_default();
    let diff_ids = image["RootFS"]["Layers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    (layers, diff_ids)
}

fn epoch_store() -> Store {
    let store = Store::new().with_env("SOURCE_DATE_EPOCH", EPOCH);
    assert!(
        store.import(Base::Busybox),
        "the busybox base must build here"
    );
    store
}

#[test]
fn same_context_same_image_in_fresh_stores() {
    if common::skip() {
        return;
    }
    let context = common::fixture("busybox-app");
    let a = epoch_store();
    let b = epoch_store();
    let base_a = a.inspect(Base::Busybox.image());
    let base_b = b.inspect(Base::Busybox.image());
    assert_eq!(base_a["Id"], base_b["Id"], "importing the same tree twice");

    let built_a = a.build(&context, "bbapp:repro", &[]);
    // Store b runs RUN steps with runc: the runtime leaves no trace.
    let runc = common::runc().display().to_string();
    let built_b = b.build(&context, "bbapp:repro", &["--runtime", &runc]);
    assert_eq!(built_a.id, built_b.id, "{}\n{}", built_a.log, built_b.log);
    let ia = a.inspect("bbapp:repro");
    let ib = b.inspect("bbapp:repro");
    assert_eq!(digests(&ia), digests(&ib));
    assert_eq!(ia["ManifestDigest"], ib["ManifestDigest"]);
    assert_eq!(ia["Created"], "2023-11-14T22:13:20Z");

    // --no-cache runs every step again and still lands on the same id.
    let fresh = a.build(&context, "bbapp:repro", &["--no-cache"]);
    assert!(fresh.keyed(Status::Cached).is_empty(), "{}", fresh.log);
    assert_eq!(fresh.id, built_a.id, "{}", fresh.log);
    assert_eq!(digests(&a.inspect("bbapp:repro")), digests(&ia));

    a.check();
    b.check();
}
