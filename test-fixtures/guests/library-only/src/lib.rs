//! A component that exports only a custom interface: no HTTP handler, no `wasi:cli/run`.

wit_bindgen::generate!({
    inline: r#"
        package tempo-fixtures:library@0.1.0;
        interface api {
            double: func(x: u32) -> u32;
        }
        world library {
            export api;
        }
    "#,
});

struct Library;

impl exports::tempo_fixtures::library::api::Guest for Library {
    fn double(x: u32) -> u32 {
        x.wrapping_mul(2)
    }
}

export!(Library);
