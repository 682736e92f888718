//! The bindings of `tempo:host/sdk`, generated from the WIT the host implements (`../wit`, which
//! `cargo tempo new` writes beside this crate in each project).

wit_bindgen::generate!({
    world: "tempo:host/sdk",
    path: "../wit",
    generate_all,
});
