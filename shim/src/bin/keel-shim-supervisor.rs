//! The per-container supervisor on its own: what `keel-shim` execs for each
//! container (`--root R --run-dir D __supervise ID`, the same arguments its
//! hidden subcommand takes). It links only the supervisor, so an idle
//! container costs less memory than with the whole CLI mapped.

use keel_shim::container::Paths;
use keel_shim::supervisor::{main as supervise, EXIT_OWN_ERROR, SUPERVISE_COMMAND};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut root, mut run, mut id) = (None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--root" => root = it.next(),
            "--run-dir" => run = it.next(),
            s if s == SUPERVISE_COMMAND => id = it.next(),
            _ => {}
        }
    }
    let (Some(root), Some(run), Some(id)) = (root, run, id) else {
        eprintln!("usage: keel-shim-supervisor --root DIR --run-dir DIR {SUPERVISE_COMMAND} ID (started by keel-shim)");
        std::process::exit(EXIT_OWN_ERROR);
    };
    std::process::exit(supervise(&Paths::new(root, run), id));
}
