//! Hydrates the server-rendered pages; nothing else lives here.
#![allow(unsafe_code)] // #[wasm_bindgen] expands to FFI glue.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
