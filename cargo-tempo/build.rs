//! The templates and the WIT are embedded in the binary (`src/templates.rs`); a file added to
//! either folder must rebuild it too, not only an edit to a file already embedded.

fn main() {
    println!("cargo:rerun-if-changed=../templates");
    println!("cargo:rerun-if-changed=../wit");
}
