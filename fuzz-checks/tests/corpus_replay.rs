//! Replays every committed fuzz corpus file through its target's check, so the normal test
//! suite catches a parser that panics (or breaks an invariant) on an input the fuzzer once
//! found or was seeded with. `cargo fuzz` itself needs a nightly-only flag; this does not.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kiln_fuzz_checks::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a folder entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_passes_its_targets_check() {
    let mut failures = Vec::new();
    let mut replayed = 0;
    for target in TARGETS {
        let dir = fuzz_dir().join("corpus").join(target.name);
        let inputs = files(&dir);
        assert!(!inputs.is_empty(), "{}: no seed inputs", dir.display());
        for path in inputs {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if std::panic::catch_unwind(|| (target.check)(&data)).is_err() {
                failures.push(path.display().to_string());
            }
            replayed += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {replayed} corpus inputs failed their check (the panic messages are above):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_target_has_a_fuzz_binary_and_a_corpus_and_nothing_else_does() {
    let names: BTreeSet<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(names.len(), TARGETS.len(), "a target name appears twice");

    let corpora: BTreeSet<String> = std::fs::read_dir(fuzz_dir().join("corpus"))
        .expect("fuzz/corpus")
        .map(|entry| entry.expect("a folder entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        corpora.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        names
    );

    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let bins: BTreeSet<&str> = manifest
        .split("[[bin]]")
        .skip(1)
        .filter_map(|bin| bin.lines().find_map(|l| l.trim().strip_prefix("name = ")))
        .map(|name| name.trim_matches('"'))
        .collect();
    assert_eq!(bins, names, "fuzz/Cargo.toml's [[bin]] targets");

    for name in names {
        let source = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        assert!(
            text.contains("kiln_fuzz_checks::"),
            "{} does not call its check in kiln_fuzz_checks",
            source.display()
        );
    }
}
