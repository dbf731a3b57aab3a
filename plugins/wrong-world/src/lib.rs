//! A well-formed component that exports a world of its own, not
//! `recovery-phase` or `placement-policy`: loading it into any slot must be
//! refused with a reason that names the missing export.

/// Says hello; the whole of this component's interface.
pub fn greet(name: &str) -> String {
    format!("hello, {name}")
}

// Only a wasm build exports the world: its export names are not valid native
// symbols.
#[cfg(target_arch = "wasm32")]
mod bindings {
    wit_bindgen::generate!({
        inline: "
            package ratchet-fixtures:wrong;
            world greeter {
                export greet: func(name: string) -> string;
            }
        ",
    });

    struct Greeter;

    impl Guest for Greeter {
        fn greet(name: String) -> String {
            super::greet(&name)
        }
    }

    export!(Greeter);
}
