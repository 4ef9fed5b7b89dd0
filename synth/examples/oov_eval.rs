//! Evaluate the out-of-vocabulary chain (`kokoro_synth::g2p::oov`).
//!
//! `cargo run --release -p kokoro-synth --example oov_eval -- filter < words`
//!   prints the words misaki marks unknown (to build the unknown-word list).
//! `cargo run --release -p kokoro-synth --example oov_eval -- report [N]`
//!   prints, for N words of misaki's American gold dictionary (every k-th, so the
//!   sample is spread over the alphabet), the phoneme error rate of the learned
//!   G2P, of CMUdict through the ARPAbet mapping, and of letter spelling against
//!   misaki's own entries; then the share of `synth/tests/data/unknown_words.txt`
//!   each stage resolves, and the cost per unknown word.
//!
//! The phoneme error rate is the edit distance between phoneme strings (one
//! symbol per character, stress marks removed) over the reference length.

use kokoro_core::Lang;
use kokoro_synth::g2p::{self, oov};
use misaki_rs::{G2P, Language};
use std::collections::BTreeMap;
use std::io::Read;
use std::time::Instant;

fn assets() -> std::path::PathBuf {
    kokoro_synth::assets_dir_from_env()
}

fn symbols(ps: &str) -> Vec<char> {
    ps.chars()
        .filter(|c| !matches!(c, 'ˈ' | 'ˌ' | ' ' | '-'))
        .collect()
}

fn edits(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

struct Per {
    errors: usize,
    total: usize,
    exact: usize,
    words: usize,
}

impl Per {
    fn new() -> Self {
        Per {
            errors: 0,
            total: 0,
            exact: 0,
            words: 0,
        }
    }
    fn add(&mut self, got: &str, want: &str) {
        let (g, w) = (symbols(got), symbols(want));
        let e = edits(&g, &w);
        self.errors += e;
        self.total += w.len();
        self.exact += usize::from(e == 0);
        self.words += 1;
    }
    fn line(&self, what: &str) -> String {
        format!(
            "{what:<34} PER {:5.1}%  words exact {:5.1}%  (n={})",
            100.0 * self.errors as f64 / self.total.max(1) as f64,
            100.0 * self.exact as f64 / self.words.max(1) as f64,
            self.words
        )
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let misaki = G2P::new(Language::EnglishUS);
    match args.first().map(String::as_str) {
        Some("filter") => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).unwrap();
            for w in text.split_whitespace() {
                let (ps, _) = misaki.g2p(w).unwrap();
                if ps.contains(&misaki.unk) {
                    println!("{w}");
                }
            }
        }
        Some("report") => report(
            &misaki,
            args.get(1).and_then(|n| n.parse().ok()).unwrap_or(3000),
        ),
        _ => eprintln!("usage: oov_eval filter|report [N]"),
    }
}

fn report(misaki: &G2P, n: usize) {
    let dir = assets();
    g2p::load_fallback(&dir).expect("fallback data (run `cargo xtask assets`)");
    let data = g2p::fallback_data().unwrap();
    let (cmu, neural) = (
        data.cmudict.as_ref().unwrap(),
        data.neural.as_ref().unwrap(),
    );
    // misaki's gold entries that are plain lowercase words with one pronunciation.
    let gold = misaki_rs::data::load_us_gold();
    let mut words: Vec<(String, String)> = gold
        .iter()
        .filter(|(w, _)| w.len() >= 3 && w.chars().all(|c| c.is_ascii_lowercase()))
        .filter_map(|(w, e)| {
            let v = serde_json::to_value(e).ok()?;
            // misaki writes the flap and the glottal stop as T and t when it speaks.
            v.as_str()
                .map(|ps| (w.clone(), ps.replace('ɾ', "T").replace('ʔ', "t")))
        })
        .collect();
    words.sort();
    let step = (words.len() / n).max(1);
    let sample: Vec<_> = words.iter().step_by(step).take(n).collect();
    let (mut per_g2p, mut per_cmu, mut per_letters) = (Per::new(), Per::new(), Per::new());
    let mut per_cmu_on_g2p = Per::new();
    let mut per_unseen = Per::new();
    for (w, want) in &sample {
        let phones = neural.predict(w).unwrap_or_default();
        let got = oov::arpabet::to_kokoro(&phones, false, w);
        per_g2p.add(&got, want);
        if let Some(p) = cmu.lookup(w) {
            let mapped = oov::arpabet::to_kokoro(&p, false, w);
            if std::env::var("OOV_EVAL_DIFF").is_ok() && symbols(&mapped) != symbols(want) {
                println!("diff {w}: {mapped} vs {want} ({})", p.join(" "));
            }
            per_cmu.add(&mapped, want);
            per_cmu_on_g2p.add(&got, want);
        } else {
            per_unseen.add(&got, want);
        }
        per_letters.add(&oov::split::spell(w, false).unwrap_or_default(), want);
    }
    println!(
        "misaki en-us gold: {} plain words, sample of {} (every {step}th)",
        words.len(),
        sample.len()
    );
    println!("{}", per_g2p.line("learned G2P (g2p-en) + mapping"));
    println!("{}", per_cmu.line("CMUdict + mapping (words in it)"));
    println!("{}", per_cmu_on_g2p.line("learned G2P on those same words"));
    println!("{}", per_unseen.line("learned G2P on words not in it"));
    println!("{}", per_letters.line("letter spelling"));

    let list = include_str!("../tests/data/unknown_words.txt");
    let (part1, part2) = list.split_once("# part 2").expect("two parts");
    let words_of = |t: &'static str| -> Vec<&'static str> {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .flat_map(str::split_whitespace)
            .collect()
    };
    let unknown: Vec<&str> = list
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(str::split_whitespace)
        .collect();
    let t = Instant::now();
    for (name, part) in [
        ("hand-written", words_of(part1)),
        ("CMUdict sample", words_of(part2)),
    ] {
        let mut by_source: BTreeMap<&str, usize> = BTreeMap::new();
        let mut empty = 0;
        for w in &part {
            let (ps, list) = g2p::phonemize_words(w, Lang::EnUs, true).unwrap();
            if ps.trim().is_empty() || ps.contains('❓') {
                empty += 1;
            }
            for word in list {
                *by_source.entry(word.source.as_str()).or_default() += 1;
            }
        }
        println!(
            "unknown words, {name}: {} words, {empty} without phonemes",
            part.len()
        );
        for (s, c) in &by_source {
            println!(
                "  {s:<8} {c:>5}  {:5.1}%",
                100.0 * *c as f64 / part.len() as f64
            );
        }
    }
    let per_word = t.elapsed().as_secs_f64() * 1000.0 / unknown.len() as f64;
    // Cost: the whole phonemize call per unknown word, and misaki alone on the same word.
    let t = Instant::now();
    for w in &unknown {
        let _ = misaki.g2p(w);
    }
    let misaki_ms = t.elapsed().as_secs_f64() * 1000.0 / unknown.len() as f64;
    let t = Instant::now();
    let mut guessed = 0;
    for w in &unknown {
        guessed += usize::from(neural.predict(&w.to_ascii_lowercase()).is_some());
    }
    let neural_ms = t.elapsed().as_secs_f64() * 1000.0 / unknown.len() as f64;
    // Ordinary prose (every word known): the chain is never called; what is left
    // is one pass over misaki's tokens. Medians of 21, side by side.
    let prose = "The quick brown fox jumps over the lazy dog. She sells sea shells by the \
                 sea shore, and the shells she sells are surely seashells.";
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..21 {
        let t = Instant::now();
        let _ = g2p::phonemize(prose, Lang::EnUs);
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let _ = misaki.g2p(prose);
        theirs.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ours.sort_by(f64::total_cmp);
    theirs.sort_by(f64::total_cmp);
    println!(
        "prose sentence pair: phonemize {:.2} ms, misaki alone {:.2} ms (medians of 21)",
        ours[10], theirs[10]
    );
    println!(
        "cost per unknown word: phonemize {per_word:.2} ms, misaki alone {misaki_ms:.2} ms, \
         learned G2P alone {neural_ms:.3} ms ({guessed} guesses)"
    );
}
