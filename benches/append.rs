//! Criterion: append throughput of the log on the canonical step record (P = 256), for a
//! pipelined single appender with a sync per 1,000 records, and for atomic batches of 100.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use meshflow_engine::log::{Durability, Log, LogOptions};
use meshflow_engine::workload::Workload;

const RECORDS: u64 = 10_000;

fn append(c: &mut Criterion) {
    let workload = Workload {
        runs: 100,
        steps: RECORDS / 100,
        payload_bytes: 256,
    };
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(10);
    group.bench_function(
        "pipelined_buffered_sync_per_1000/records=10000/p=256",
        |b| {
            b.iter_batched(
                || tempfile::tempdir().expect("tempdir"),
                |dir| {
                    let (log, _) = Log::open(dir.path(), LogOptions::default()).expect("open");
                    let mut appender = log.appender();
                    for i in 0..RECORDS {
                        appender
                            .submit(workload.record(i), Durability::Buffered)
                            .expect("submit");
                        if (i + 1) % 1000 == 0 {
                            while appender.outstanding() > 0 {
                                appender.next_receipts().expect("receipt");
                            }
                            log.sync().expect("sync");
                        }
                    }
                    drop(appender);
                    log.close().expect("close");
                    dir
                },
                BatchSize::PerIteration,
            );
        },
    );
    group.bench_function("atomic_batches_of_100_sync/records=10000/p=256", |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("tempdir"),
            |dir| {
                let (log, _) = Log::open(dir.path(), LogOptions::default()).expect("open");
                for chunk in 0..RECORDS / 100 {
                    let batch = (chunk * 100..(chunk + 1) * 100)
                        .map(|i| workload.record(i))
                        .collect();
                    log.append_batch(batch, Durability::Sync).expect("append");
                }
                log.close().expect("close");
                dir
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
