//! The Kasa desktop register.
#![cfg_attr(all(not(debug_assertions), target_os = "windows"), windows_subsystem = "windows")]

fn main() {
    kasa_desktop::run();
}
