//! A component that exports only a custom interface (no HTTP handler, no `wasi:cli/run`) and
//! imports one that no host provides.

wit_bindgen::generate!({
    inline: r#"
        package tempo-fixtures:library@0.1.0;
        interface api {
            double: func(x: u32) -> u32;
        }
        interface host {
            note: func(x: u32);
        }
        world library {
            import host;
            export api;
        }
    "#,
});

struct Library;

impl exports::tempo_fixtures::library::api::Guest for Library {
    fn double(x: u32) -> u32 {
        tempo_fixtures::library::host::note(x);
        x.wrapping_mul(2)
    }
}

export!(Library);
