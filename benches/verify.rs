//! Criterion: `verify()` over a log of the canonical workload: frames, chain recomputation,
//! slot CRCs and commitments, on worker threads.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meshflow_engine::log::{Durability, Log, LogOptions, LogReader};
use meshflow_engine::workload::Workload;

const RECORDS: u64 = 50_000;

fn verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let workload = Workload {
        runs: 500,
        steps: RECORDS / 500,
        payload_bytes: 256,
    };
    let (log, _) = Log::open(dir.path(), LogOptions::default()).expect("open");
    for chunk in 0..RECORDS / 1000 {
        let batch = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| workload.record(i))
            .collect();
        log.append_batch(batch, Durability::Buffered)
            .expect("append");
    }
    log.close().expect("close");
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
