//! Property tests for Codex config patching: for many generated `config.toml` documents
//! (comments, inline tables, other providers, `[projects."..."]`, `[features]`, the built-in
//! provider with or without `openai_base_url`), `switch on` then `switch off` gives back the
//! identical text, also when Codex edits the file meanwhile (a new project trust entry, an MCP
//! server), and `switch on` changes nothing outside the keys the helper owns. Both shapes are
//! covered: the provider in force redirected in place, and the helper's own `codex_proxy`
//! table. The same holds for the bytes on disk in CRLF and with a byte order mark, through the
//! style split the switch uses. Deterministic (seeded), bounded in count.

use codex_helper::codex::patch::{
    Originals, Redirect, helper_table_originals, originals, switch_off, switch_on,
};
use codex_helper::codex::preset::{Compaction, PatchPlan, Preset};
use codex_helper::codex::text::TextStyle;

const CASES: usize = 600;

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
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn eq(r: &mut Rng) -> &'static str {
    ["=", " = ", "  =  ", " ="][r.below(4) as usize]
}

fn comment(r: &mut Rng) -> String {
    if r.chance(40) {
        format!(
            "   # {}",
            r.pick(&[
                "note",
                "keep this",
                "日本語 comment",
                "model = \"not a key\""
            ])
        )
    } else {
        String::new()
    }
}

fn blank(r: &mut Rng) -> &'static str {
    ["", "\n", "\n\n"][r.below(3) as usize]
}

fn document(r: &mut Rng) -> String {
    let mut out = String::new();
    if r.chance(60) {
        out.push_str("# Codex config\n# second line of the header\n");
    }
    out.push_str(blank(r));
    if r.chance(70) {
        out.push_str(&format!(
            "model{}\"{}\"{}\n",
            eq(r),
            r.pick(&["gpt-5.1", "gpt-5.4", "o3"]),
            comment(r)
        ));
    }
    if r.chance(50) {
        out.push_str(&format!("approval_policy{}\"never\"\n", eq(r)));
    }
    let providers = ["relay", "backup", "azure-east", "local_llm"];
    let n_providers = r.below(3) as usize;
    if r.chance(60) && n_providers > 0 {
        out.push_str(&format!(
            "model_provider{}\"{}\"{}\n",
            eq(r),
            providers[0],
            comment(r)
        ));
    }
    if r.chance(15) {
        out.push_str(&format!(
            "openai_base_url{}\"https://gateway.example/v1\"{}\n",
            eq(r),
            comment(r)
        ));
    }
    if r.chance(10) && n_providers == 0 {
        out.push_str("model_provider = \"openai\"\n");
    }
    if r.chance(30) {
        out.push_str(&format!(
            "sandbox_mode{}\"read-only\"\nnotify = [\"say\", \"done\"]\n",
            eq(r)
        ));
    }
    out.push_str(blank(r));
    if r.chance(20) {
        out.push_str("[model_providers]\n");
    }
    for p in providers.iter().take(n_providers) {
        out.push_str(blank(r));
        if r.chance(30) {
            out.push_str(&format!("# the {p} provider\n"));
        }
        out.push_str(&format!(
            "[model_providers.{p}]\nname{}\"{p}\"{}\nbase_url = \"https://{p}.example/v1\"\n",
            eq(r),
            comment(r)
        ));
        if r.chance(50) {
            out.push_str(&format!(
                "env_key = \"{}_KEY\"\n",
                p.to_uppercase().replace('-', "_")
            ));
        }
        if r.chance(40) {
            out.push_str("http_headers = { \"X-Org\" = \"me\", X-Trace = \"1\" }\n");
        }
        if r.chance(20) {
            out.push_str("query_params = { api-version = \"2025-04-01\" }\n");
        }
        if r.chance(20) {
            out.push_str(&format!(
                "requires_openai_auth = {}\n",
                r.pick(&["true", "false"])
            ));
        }
        if r.chance(20) {
            out.push_str("supports_websockets = true # ws\n");
        }
        if r.chance(15) {
            out.push_str("experimental_bearer_token = \"sk-user-own\"\n");
        }
    }
    if r.chance(15) {
        out.push_str("\n[model_providers.codex_proxy]\nname = \"mine\"\nbase_url = \"http://127.0.0.1:9000/v1\"\nrequest_max_retries = 2\n");
    }
    for i in 0..r.below(3) {
        out.push_str(blank(r));
        out.push_str(&format!(
            "[projects.\"/home/me/project {i}\"]\ntrust_level{}\"trusted\"{}\n",
            eq(r),
            comment(r)
        ));
    }
    if r.chance(60) {
        out.push_str(blank(r));
        out.push_str("[features]\n");
        if r.chance(50) {
            out.push_str("plugins = false\n");
        }
        if r.chance(30) {
            out.push_str(&format!(
                "remote_compaction_v2 = {}{}\n",
                r.pick(&["true", "false"]),
                comment(r)
            ));
        }
    }
    if r.chance(30) {
        out.push_str("\n[analytics]\nenabled = false\n");
    }
    if r.chance(20) {
        out.push_str(
            "\n[[mcp_servers_list]]\nname = \"a\"\n\n[[mcp_servers_list]]\nname = \"b\"\n",
        );
    }
    out
}

fn plan(r: &mut Rng) -> PatchPlan {
    loop {
        let preset = Preset::ALL[r.below(5) as usize];
        let ws = r.chance(30);
        let compaction = [
            Compaction::Auto,
            Compaction::Local,
            Compaction::RemoteV1,
            Compaction::RemoteV2,
        ][r.below(4) as usize];
        if let Ok(plan) = PatchPlan::new(preset, ws, compaction) {
            return plan;
        }
    }
}

/// The document as data, without the keys the helper owns under `redirect`.
fn unowned(text: &str, redirect: &Redirect) -> toml::Table {
    let mut doc: toml::Table = toml::from_str(text).unwrap();
    match redirect {
        Redirect::HelperTable => {
            doc.remove("model_provider");
            if let Some(toml::Value::Table(providers)) = doc.get_mut("model_providers") {
                providers.remove("codex_proxy");
                if providers.is_empty() {
                    doc.remove("model_providers");
                }
            }
        }
        Redirect::Provider { id, .. } => {
            if let Some(toml::Value::Table(table)) = doc
                .get_mut("model_providers")
                .and_then(|p| p.get_mut(id.as_str()))
            {
                for key in [
                    "base_url",
                    "name",
                    "model_catalog_url",
                    "requires_openai_auth",
                    "supports_websockets",
                    "request_max_retries",
                    "experimental_bearer_token",
                ] {
                    table.remove(key);
                }
            }
        }
        Redirect::BuiltinOpenai { .. } => {
            doc.remove("openai_base_url");
        }
    }
    if let Some(toml::Value::Table(features)) = doc.get_mut("features") {
        features.remove("remote_compaction_v2");
        if features.is_empty() {
            doc.remove("features");
        }
    }
    doc
}

/// Both shapes: the one `switch on` chooses, and the helper's own table.
fn both_shapes(text: &str, plan: &PatchPlan) -> [Originals; 2] {
    [
        originals(Some(text), plan).unwrap_or_else(|e| panic!("{e}\n{text}")),
        helper_table_originals(Some(text)).unwrap(),
    ]
}

/// An edit Codex itself makes while switched on: a project trusted, an MCP server added.
fn codex_edit(r: &mut Rng) -> &'static str {
    r.pick(&[
        "",
        "\n[projects.\"/home/me/new\"]\ntrust_level = \"trusted\"\n",
        "\n[mcp_servers.docs]\ncommand = \"docs-mcp\"\nargs = [\"--stdio\"]\n",
    ])
}

#[test]
fn switch_on_then_off_gives_back_the_identical_text() {
    let mut r = Rng(0x5eed_c0de);
    let mut in_place = 0;
    for case in 0..CASES {
        let text = document(&mut r);
        let plan = plan(&mut r);
        let edit = codex_edit(&mut r);
        for mut o in both_shapes(&text, &plan) {
            in_place += usize::from(o.redirect != Redirect::HelperTable);
            let on = switch_on(Some(&text), &plan, "http://127.0.0.1:3211/v1", &mut o).unwrap();
            let edited = format!("{on}{edit}");
            let off = switch_off(&edited, &o, false).unwrap();
            assert_eq!(
                off.as_deref(),
                Some(format!("{text}{edit}").as_str()),
                "case {case} with {plan:?}, {:?}\n--- original\n{text}\n--- switched on\n{on}",
                o.redirect
            );
        }
    }
    assert!(
        in_place > CASES / 3,
        "the in-place shapes are exercised ({in_place})"
    );
}

#[test]
fn switch_on_changes_nothing_outside_the_owned_keys() {
    let mut r = Rng(0xfeed_f00d);
    for case in 0..CASES {
        let text = document(&mut r);
        let plan = plan(&mut r);
        for mut o in both_shapes(&text, &plan) {
            let on = switch_on(Some(&text), &plan, "http://127.0.0.1:3211/v1", &mut o).unwrap();
            assert_eq!(
                unowned(&on, &o.redirect),
                unowned(&text, &o.redirect),
                "case {case}, {:?}\n--- original\n{text}\n--- switched on\n{on}",
                o.redirect
            );
            // Every comment survives, in order.
            let comments = |t: &str| {
                t.lines()
                    .filter_map(|l| l.find('#').map(|i| l[i..].to_string()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(comments(&on), comments(&text), "case {case}\n{on}");
            let parsed: toml::Table = toml::from_str(&on).unwrap();
            let original: toml::Table = toml::from_str(&text).unwrap();
            match &o.redirect {
                Redirect::HelperTable => {
                    assert_eq!(parsed["model_provider"].as_str(), Some("codex_proxy"));
                    assert_eq!(
                        parsed["model_providers"]["codex_proxy"]["name"].as_str(),
                        Some(plan.provider_name)
                    );
                }
                Redirect::Provider { id, .. } => {
                    assert_eq!(
                        parsed.get("model_provider"),
                        original.get("model_provider"),
                        "the provider id stays"
                    );
                    let table = &parsed["model_providers"][id.as_str()];
                    assert_eq!(table["base_url"].as_str(), Some("http://127.0.0.1:3211/v1"));
                    assert_eq!(table["name"].as_str(), Some(plan.provider_name));
                }
                Redirect::BuiltinOpenai { .. } => {
                    assert_eq!(parsed.get("model_provider"), original.get("model_provider"));
                    assert_eq!(
                        parsed["openai_base_url"].as_str(),
                        Some("http://127.0.0.1:3211/v1")
                    );
                }
            }
            // Switching on twice is the same as once.
            let again = switch_on(Some(&on), &plan, "http://127.0.0.1:3211/v1", &mut o).unwrap();
            assert_eq!(again, on, "case {case}");
        }
    }
}

#[test]
fn crlf_and_bom_files_round_trip_byte_for_byte() {
    let mut r = Rng(0xc7_1f_b0_0b);
    for case in 0..CASES / 2 {
        let bom = if r.chance(50) { "\u{feff}" } else { "" };
        let crlf = r.chance(70);
        let mut doc = document(&mut r);
        if crlf {
            doc = doc.replace('\n', "\r\n");
        }
        let raw = format!("{bom}{doc}");
        let plan = plan(&mut r);
        let (read, text) = TextStyle::split(&raw);
        for mut o in both_shapes(&text, &plan) {
            let on = switch_on(Some(&text), &plan, "http://127.0.0.1:3211/v1", &mut o).unwrap();
            let on_disk = read.apply(&on);
            if crlf && on_disk.contains('\n') {
                assert_eq!(
                    on_disk.matches('\n').count(),
                    on_disk.matches("\r\n").count(),
                    "case {case}: every line break is CRLF while switched on\n{on_disk:?}"
                );
            }
            let (read, text) = TextStyle::split(&on_disk);
            let off = switch_off(&text, &o, false)
                .unwrap()
                .map(|t| read.apply(&t));
            assert_eq!(
                off.as_deref(),
                Some(raw.as_str()),
                "case {case} with {read:?}, {plan:?}"
            );
        }
    }
}
