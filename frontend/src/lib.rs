//! Hydrates the server-rendered pages; nothing else lives here.
#![allow(unsafe_code)]
// #[wasm_bindgen] expands to FFI glue.
// The case page's view types are deep; their layout needs more than 128.
#![recursion_limit = "512"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    app::ui::mark_hydrated();
}
