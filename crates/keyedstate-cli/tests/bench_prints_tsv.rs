//! `keyedstate bench` prints one TSV line per figure, baselines included, under a header.

use std::process::Command;

#[test]
fn bench_prints_every_figure_as_tsv() {
    let out = Command::new(env!("CARGO_BIN_EXE_keyedstate"))
        .args(["bench", "--keys", "2000", "--passes", "1", "--warmup", "0"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("backend\tbenchmark\tops_per_sec"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
    for row in &rows {
        assert_eq!(row.len(), 3, "{row:?}");
        assert!(row[2].parse::<f64>().unwrap() > 0.0, "{row:?}");
    }
    let has =
        |backend: &str, benchmark: &str| rows.iter().any(|r| r[0] == backend && r[1] == benchmark);
    for benchmark in [
        "valueUpdate",
        "valueGet",
        "listAppend",
        "listGetAndIterate",
        "mapUpdate",
        "mapGet",
    ] {
        for backend in ["rocksdb", "raw-rocksdb", "heap", "std-hashmap"] {
            assert!(has(backend, benchmark), "{backend} {benchmark} in {stdout}");
        }
    }
    assert!(
        has("rocksdb", "checkpointIncremental") && has("heap", "checkpointFull"),
        "{stdout}"
    );
}
