//! Codex config patching (`codex::patch`): `switch on` then `switch off` gives back the
//! exact text, also when Codex edited the file meanwhile (see [`edit_kept`] for the two
//! corners where an edit leaves it less than exact); switching on twice is switching on
//! once; what `switch on` writes is TOML Codex can read; a file that cannot be patched is a
//! [`PatchError`](codex_helper::codex::doc::PatchError), never a panic. Line breaks the patch
//! does not own stay as they were (CRLF, mixed, a missing final one); a BOM splits off and
//! goes back on exactly.
//!
//! Documents are raw text, or assembled from the shapes Codex configs take: root keys,
//! provider tables, dotted keys, inline tables, `[features]`, projects and arrays of tables.

use codex_helper::codex::patch::{
    Originals, helper_table_originals, originals, switch_off, switch_on,
};
use codex_helper::codex::preset::{Compaction, PatchPlan, Preset};
use codex_helper::codex::text::TextStyle;

use super::input::Input;

const BASE_URL: &str = "http://127.0.0.1:3211/v1";

const PIECES: [&str; 34] = [
    "# Codex config\n",
    "\n",
    "model = \"gpt-5.1\"\n",
    "model_provider = \"relay\"\n",
    "model_provider = \"openai\" # the built-in one\n",
    "model_provider = \"codex_proxy\"\n",
    "model_provider = \"oss\"\n",
    "model_provider=\"relay\"   # spaced\n",
    "openai_base_url = \"https://gateway.example/v1\"\n",
    "approval_policy = \"never\"\n",
    "[model_providers]\n",
    "[model_providers.relay]\n",
    "[model_providers.backup]\n",
    "[model_providers.codex_proxy]\n",
    "name = \"relay\"\n",
    "base_url = \"https://relay.example/v1\" # keep\n",
    "base_url = \"http://127.0.0.1:9000/v1\"\n",
    "env_key = \"RELAY_KEY\"\n",
    "experimental_bearer_token = \"sk-user-own\"\n",
    "experimental_bearer_token = \"codex-helper-placeholder\"\n",
    "requires_openai_auth = true\n",
    "supports_websockets = false\n",
    "request_max_retries = 2\n",
    "http_headers = { \"X-Org\" = \"me\" }\n",
    "model_providers.relay.base_url = \"https://dotted.example/v1\"\n",
    "relay.name = \"dotted\"\n",
    "model_providers = { relay = { name = \"inline\", base_url = \"https://i.example\" } }\n",
    "[features]\n",
    "remote_compaction_v2 = true\n",
    "features = { plugins = false }\n",
    "[projects.\"/home/me/p\"]\ntrust_level = \"trusted\"\n",
    "[[mcp_servers_list]]\nname = \"a\"\n",
    "[profiles.work]\nmodel_provider = \"backup\"\n",
    "\"model_provider\" = 'relay'\n",
];

const EDITS: [&str; 3] = [
    "",
    "\n[projects.\"/home/me/new\"]\ntrust_level = \"trusted\"\n",
    "\n[mcp_servers.docs]\ncommand = \"docs-mcp\"\n",
];

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let plan = plan(&mut input);
    let edit = input.pick(&EDITS);
    let bom = input.chance(20);
    let crlf = input.chance(30);
    let mut text = if input.byte() % 4 == 0 {
        String::from_utf8_lossy(input.rest()).into_owned()
    } else {
        (0..input.below(16)).map(|_| input.pick(&PIECES)).collect()
    };
    if crlf {
        text = text.replace('\n', "\r\n");
    }
    round_trips(&text, &plan, edit);
    bom_round_trips(&text, bom);
    absent_file_round_trips(&plan);
}

fn plan(input: &mut Input) -> PatchPlan {
    let compactions = [
        Compaction::Auto,
        Compaction::Local,
        Compaction::RemoteV1,
        Compaction::RemoteV2,
    ];
    let preset = input.pick(&Preset::ALL);
    let ws = input.chance(30);
    // Combinations a user cannot ask for are refused; fall back to what they can.
    PatchPlan::new(preset, ws, input.pick(&compactions))
        .or_else(|_| PatchPlan::new(preset, false, Compaction::Auto))
        .expect("every preset works with its own compaction and no WebSocket")
}

fn round_trips(text: &str, plan: &PatchPlan, edit: &str) {
    let shapes: Vec<Originals> = [
        originals(Some(text), plan),
        helper_table_originals(Some(text)),
    ]
    .into_iter()
    .filter_map(Result::ok)
    .collect();
    for mut o in shapes {
        let Ok(on) = switch_on(Some(text), plan, BASE_URL, &mut o) else {
            continue;
        };
        let context = || {
            format!(
                "{plan:?}, {:?}\n--- original\n{text}\n--- switched on\n{on}",
                o.redirect
            )
        };
        if let Err(e) = on.parse::<toml::Table>() {
            panic!("switched on is not TOML: {e}\n{}", context());
        }
        let again = switch_on(Some(&on), plan, BASE_URL, &mut o.clone());
        assert_eq!(
            again.as_deref(),
            Ok(on.as_str()),
            "switching on twice\n{}",
            context()
        );
        let off = switch_off(&on, &o, false);
        assert_eq!(
            off,
            Ok(Some(text.to_string())),
            "on then off\n{}",
            context()
        );
        let edited = format!("{on}{edit}");
        if edited.parse::<toml::Table>().is_ok() {
            let off = switch_off(&edited, &o, false);
            let want = format!("{text}{edit}");
            let got = off.as_ref().ok().and_then(|t| t.as_deref());
            assert!(
                got.is_some_and(|got| edit_kept(text, edit, got)),
                "on, a Codex edit, off\n{}\n  got: {off:?}\n want: {want:?}",
                context()
            );
        }
    }
}

/// Whether `got` is the file `text` with the Codex edit `edit` after it, as `switch off` can
/// give it back: exactly; or, where the file mixes CRLF and LF lines, with the same lines and
/// the same number of each break (lines of equal text, such as blank lines, may trade breaks:
/// a line diff cannot tell them apart); or, when the file's last line had no break, with the
/// break `switch on` gave it (the file's majority break) kept, as Codex appended after it.
fn edit_kept(text: &str, edit: &str, got: &str) -> bool {
    let want = format!("{text}{edit}");
    let crlf = |s: &str| s.matches("\r\n").count();
    let same_lines =
        |a: &str, b: &str| a.replace("\r\n", "\n") == b.replace("\r\n", "\n") && crlf(a) == crlf(b);
    got == want
        || (want.contains("\r\n") && same_lines(got, &want))
        || (!text.is_empty()
            && !text.ends_with('\n')
            && ["\n", "\r\n"]
                .iter()
                .any(|brk| got == format!("{text}{brk}{edit}")))
}

/// A file's BOM comes off and goes back on exactly, and nothing else changes.
fn bom_round_trips(text: &str, bom: bool) {
    if text.starts_with('\u{feff}') {
        return;
    }
    let style = TextStyle { bom };
    let raw = style.apply(text);
    let (read, plain) = TextStyle::split(&raw);
    assert_eq!((read, plain.as_str()), (style, text), "{raw:?}");
    assert_eq!(read.apply(&plain), raw);
}

fn absent_file_round_trips(plan: &PatchPlan) {
    for mut o in [originals(None, plan), helper_table_originals(None)]
        .into_iter()
        .map(|o| o.expect("no file is fine"))
    {
        let on = switch_on(None, plan, BASE_URL, &mut o).expect("a new file");
        assert_eq!(switch_off(&on, &o, false), Ok(None), "{on}");
    }
}
