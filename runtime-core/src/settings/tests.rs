//! The merge of the sources, and what a setting says of itself.

use super::*;

const LIMIT: Setting = Setting::new("demo", "limit")
    .var("DEMO_LIMIT")
    .flag("limit");
const NAMES: Setting = Setting::new("demo", "names").var("DEMO_NAMES");

fn sources(toml: Option<&str>, dotenv: &[(&str, &str)], process: &[(&str, &str)]) -> Sources {
    let pairs = |vars: &[(&str, &str)]| {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    Sources::new(
        Path::new("/project"),
        toml,
        pairs(dotenv).into_iter().collect(),
        pairs(process),
    )
    .unwrap()
}

#[test]
fn flag_beats_the_process_which_beats_dotenv_which_beats_tempo_toml() {
    let all = sources(None, &[("DEMO_LIMIT", "2")], &[("DEMO_LIMIT", "3")]);
    assert_eq!(all.value(&LIMIT, Some(4), Some(1), "n").unwrap(), Some(4));
    assert_eq!(all.value(&LIMIT, None, Some(1), "n").unwrap(), Some(3));
    let dotenv = sources(None, &[("DEMO_LIMIT", "2")], &[]);
    assert_eq!(dotenv.value(&LIMIT, None, Some(1), "n").unwrap(), Some(2));
    // An empty variable is unset, and hides `.env`'s.
    let cleared = sources(None, &[("DEMO_LIMIT", "2")], &[("DEMO_LIMIT", "")]);
    assert_eq!(cleared.value(&LIMIT, None, Some(1), "n").unwrap(), Some(1));
    let none = sources(None, &[], &[]);
    assert_eq!(none.value(&LIMIT, None, Some(1), "n").unwrap(), Some(1));
    assert_eq!(none.value::<u32>(&LIMIT, None, None, "n").unwrap(), None);
    let bad = sources(None, &[], &[("DEMO_LIMIT", "soon")]);
    let err = bad
        .value::<u32>(&LIMIT, None, None, "a number")
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("`DEMO_LIMIT=soon` is not a number"),
        "{err}"
    );
}

#[test]
fn lists_are_comma_separated_and_trimmed() {
    let vars = sources(None, &[], &[("DEMO_NAMES", "a, b,,c ")]);
    assert_eq!(vars.list(&NAMES, &[], None).unwrap(), ["a", "b", "c"]);
    let flag = ["x,y".to_owned(), " z".to_owned()];
    assert_eq!(vars.list(&NAMES, &flag, None).unwrap(), ["x", "y", "z"]);
    let toml = Some(vec!["t".to_owned()]);
    assert_eq!(
        sources(None, &[], &[]).list(&NAMES, &[], toml).unwrap(),
        ["t"]
    );
}

#[test]
fn sections_are_typed_and_unknown_ones_are_named() {
    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Demo {
        limit: Option<u32>,
    }
    let toml = sources(Some("[demo]\nlimit = 5\n[dmeo]\n"), &[], &[]);
    assert_eq!(toml.section::<Demo>("demo").unwrap().limit, Some(5));
    assert_eq!(toml.section::<Demo>("absent").unwrap().limit, None);
    let err = toml.check_sections(["demo"]).unwrap_err().to_string();
    assert!(err.contains("unknown section `[dmeo]`"), "{err}");
    let bad = sources(Some("[demo]\nlimt = 5\n"), &[], &[]);
    let err = format!("{:#}", bad.section::<Demo>("demo").unwrap_err());
    assert!(err.contains("`/project/tempo.toml` is not valid"), "{err}");
    assert!(err.contains("`[demo]`: unknown field `limt`"), "{err}");
}

#[test]
fn a_setting_says_every_way_to_set_it() {
    assert_eq!(
        LIMIT.how_to_set(),
        "`--limit`, `DEMO_LIMIT` or `[demo] limit` in tempo.toml"
    );
    assert_eq!(
        Setting::new("demo", "only").how_to_set(),
        "`[demo] only` in tempo.toml"
    );
}
