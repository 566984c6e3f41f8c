//! CI's short pass of every fuzz target, on the stable toolchain: each target runs on its committed seeds
//! (`fuzz/seeds/<target>/`: real requests, uploads, images, URLs and configs), on every input a fuzzing
//! campaign ever failed on (`fuzz/regressions/<target>/`), and on `GLIMPSE_FUZZ_SHORT_RUNS` (default 2,000)
//! mutations of the seeds. A failure names the target, the input's file or the mutation seed, and the broken
//! property. The long, coverage-guided campaign is `scripts/fuzz.sh`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use glimpse_fuzz::mutate::{mutate, Rng};
use glimpse_fuzz::targets::TARGETS;

fn inputs(folder: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(folder) {
        Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).expect("a readable input"))).collect()
}

fn runs() -> usize {
    std::env::var("GLIMPSE_FUZZ_SHORT_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000)
}

#[test]
fn every_target_keeps_its_properties_on_seeds_regressions_and_mutations() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    for (name, target) in TARGETS {
        let started = Instant::now();
        let seeds = inputs(&fuzz.join("seeds").join(name));
        assert!(!seeds.is_empty(), "{name} has no seeds in fuzz/seeds/{name}");
        for (path, data) in seeds.iter().chain(&inputs(&fuzz.join("regressions").join(name))) {
            let guard = Announce(format!("{name}: the input {}", path.display()), data.clone());
            target(data);
            std::mem::forget(guard);
        }
        let mut rng = Rng::new(0x5eed ^ name.len() as u64);
        for run in 0..runs() {
            let base = &seeds[rng.below(seeds.len())].1;
            let other = &seeds[rng.below(seeds.len())].1;
            let state = rng.next();
            let input = mutate(&mut Rng::new(state), base, other);
            // Printed only if the target panics, so a failure can be replayed from the seed.
            let guard = Announce(format!("{name}: mutation {run} (Rng::new({state:#x}))"), input.clone());
            target(&input);
            std::mem::forget(guard);
        }
        eprintln!("{name}: {} seeds, {} mutations in {:.1?}", seeds.len(), runs(), started.elapsed());
    }
    glimpse_fuzz::harness::server().remove_data();
}

/// Says which input was running when a target panicked, and saves it for `fuzz/regressions/` (forgotten after
/// a pass, so its `Drop` runs only while unwinding).
struct Announce(String, Vec<u8>);

impl Drop for Announce {
    fn drop(&mut self) {
        let saved = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-short-pass-failure.bin");
        let _ = std::fs::write(&saved, &self.1);
        eprintln!("{} broke a property; the input is saved as {}", self.0, saved.display());
    }
}
