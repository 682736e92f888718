//! A program that imports an interface no host provides.

wit_bindgen::generate!({
    inline: r#"
        package tempo-fixtures:missing@0.1.0;
        interface greeter {
            greet: func() -> string;
        }
        world app {
            import greeter;
        }
    "#,
});

fn main() {
    println!("{}", tempo_fixtures::missing::greeter::greet());
}
