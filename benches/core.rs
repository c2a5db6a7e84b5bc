//! Throughput of the pure core in MB/s: normalization and the rules detector, on ASCII prose
//! and on mixed-script text (accents, Cyrillic, CJK, emoji, some invisible characters).
//! Run: `cargo bench --bench core`. Criterion prints bytes/s for each; the ratio mixed/ASCII is
//! the cost of the non-ASCII path.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ragwall::detect::rules::RuleSet;
use ragwall::normalize::{NormalizeOptions, normalize};

const ASCII: &str = "To restart the service after changing its configuration, run systemctl \
restart nginx and check the journal for errors. If the system prompt of your shell looks wrong, \
ignore it: the override file in /etc/systemd/system takes precedence over the packaged unit. ";

const MIXED: &str = "Le café de la gare ouvre à 7 h. Привет, это обычный текст о погоде. \
東京の天気は晴れです。 Ｆｕｌｌｗｉｄｔｈ and 𝐛𝐨𝐥𝐝 text, a soft\u{00AD}hyphen, emoji 👍🏽 and ❤\u{FE0F}. ";

fn corpus(unit: &str, bytes: usize) -> String {
    unit.repeat(bytes / unit.len() + 1)
}

fn bench(c: &mut Criterion) {
    let opts = NormalizeOptions::default();
    let rules = RuleSet::embedded().expect("rules");
    for (name, unit) in [("ascii", ASCII), ("mixed", MIXED)] {
        let text = corpus(unit, 64 * 1024);
        let mut g = c.benchmark_group(format!("{name}_64KiB"));
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function("normalize", |b| {
            b.iter(|| normalize(std::hint::black_box(&text), &opts))
        });
        let normalized = normalize(&text, &opts).text;
        g.bench_function("rules", |b| {
            b.iter(|| rules.scan(std::hint::black_box(&normalized)))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
