//! The fuzz targets' invariants (fuzz/src/checks/) as bounded property tests: each target's
//! `check` runs on a few hundred generated inputs (deterministic, seeded), plus every input a
//! fuzzer once found failing, so the normal suite keeps them fixed. The coverage-guided runs
//! are `scripts/fuzz` (see README, "Fuzzing").

#[path = "../fuzz/src/checks/mod.rs"]
mod checks;

/// Inputs per target.
const CASES: u64 = 300;

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Up to `max` random bytes, the first choosing the target's mode in turn.
    fn input(&mut self, case: u64, max: u64) -> Vec<u8> {
        let len = self.next() % (max + 1);
        let mut bytes: Vec<u8> = (0..len).map(|_| self.next() as u8).collect();
        if let Some(first) = bytes.first_mut() {
            *first = case as u8;
        }
        bytes
    }
}

/// Runs `check` on generated inputs; a failure names the input to add as a regression case.
fn run(seed: u64, max: u64, check: fn(&[u8])) {
    let mut rng = Rng(seed);
    for case in 0..CASES {
        let input = rng.input(case, max);
        let outcome = std::panic::catch_unwind(|| check(&input));
        if let Err(panic) = outcome {
            eprintln!("case {case} failed; input: {input:?}");
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn request_decoding() {
    run(0xc0d1_0001, 160, checks::coding::check);
}

#[test]
fn sse_tap() {
    run(0x55e0_0002, 400, checks::sse::check);
}

#[test]
fn session_identity() {
    run(0x5e55_0003, 300, checks::session::check);
}

#[test]
fn config_parse() {
    run(0xc0f1_0004, 300, checks::config::check);
}

#[test]
fn codex_patch() {
    run(0xa7c4_0005, 200, checks::patch::check);
    // Inputs the fuzzer found failing: a CRLF line in an LF file came back LF after
    // `switch on` then `switch off`.
    checks::patch::check(&[
        0x0b, 0x29, 0x4a, 0x0a, 0xff, 0xff, 0x0c, 0x0d, 0x0a, 0x23, 0x29,
    ]);
    // A table removed from before a blank line of another break kept the wrong blank line.
    checks::patch::check(&[
        0xd1, 0xb1, 0x34, 0xe0, 0x78, 0x01, 0x65, 0x03, 0xf8, 0xd1, 0xf8, 0xd1, 0xd1, 0x0d, 0x00,
        0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x0a,
    ]);
    // A CRLF file without a final break, appended to by Codex while switched on: the break
    // `switch on` gave its last line is CRLF, which the check's corner allows.
    checks::patch::check(&[
        0x3d, 0x02, 0x00, 0x34, 0x1e, 0xb7, 0x34, 0x34, 0x3d, 0x22, 0x22, 0x22, 0x6f, 0x0d, 0x0a,
        0xef, 0x6f, 0x65, 0x28, 0x73, 0x22, 0x22, 0x22, 0x22, 0x22,
    ]);
}

#[test]
fn catalog() {
    run(0xca7a_0006, 300, checks::catalog::check);
}
