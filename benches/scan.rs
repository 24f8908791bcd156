//! Criterion: a full forward scan (frames CRC-checked, no hashing) over a log of the canonical
//! workload, through mapped windows.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meshflow_engine::log::{LogOptions, LogReader};

const RECORDS: u64 = 50_000;

fn scan(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    meshflow_suite::build_workload_log(dir.path(), RECORDS);
    let reader = LogReader::open(dir.path(), LogOptions::default()).expect("reader");
    let mut group = c.benchmark_group("scan");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(20);
    group.bench_function("forward_scan/records=50000/p=256", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for record in reader.scan(0).expect("scan") {
                n += record.expect("record").view().payload().len() as u64;
            }
            n
        });
    });
    group.throughput(Throughput::Elements(1000));
    group.bench_function("get_by_offset/random_1000", |b| {
        b.iter(|| {
            let mut x = 12345u64;
            for _ in 0..1000 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let offset = (x >> 33) % RECORDS;
                reader.get(offset).expect("get").expect("present");
            }
        });
    });
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
