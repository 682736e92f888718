//! A `wasi:cli` program whose behaviour its arguments choose.

use std::io::Write as _;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    println!("args: {}", args.join(" "));
    eprintln!("cli-fixture on stderr");
    match args.get(1).map(String::as_str) {
        Some("exit") => {
            let code = args.get(2).and_then(|c| c.parse().ok()).unwrap_or(2);
            let _ = std::io::stdout().flush();
            wasip2::cli::exit::exit_with_code(code);
            unreachable!("exit-with-code returned");
        }
        Some("fail") => Err("asked to fail".into()),
        Some("trap") => panic!("asked to trap"),
        Some("env") => {
            let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
            println!("env: [{}]", vars.join(","));
            Ok(())
        }
        Some("fs") => {
            println!("fs: {}", match std::fs::read_dir("/") {
                Ok(_) => "listed /".to_owned(),
                Err(e) => format!("denied ({e})"),
            });
            Ok(())
        }
        _ => Ok(()),
    }
}
