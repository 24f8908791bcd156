//! Criterion: `verify()` over a log of the canonical workload: frames, chain recomputation,
//! slot CRCs and commitments, on worker threads.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meshflow_engine::log::{LogOptions, LogReader};

const RECORDS: u64 = 50_000;

fn verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    meshflow_suite::build_workload_log(dir.path(), RECORDS);
    let reader = LogReader::open(dir.path(), LogOptions::default()).expect("reader");
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(10);
    group.bench_function("full_verify/records=50000/p=256", |b| {
        b.iter(|| reader.verify().expect("valid").record_count);
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
