//! Integration tests: the real server on a random port, on a fresh SQLite
//! database and (when reachable) a fresh PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod accounts;
mod analytics;
mod audit;
mod cases;
mod chat;
mod cli;
mod dicom;
mod dicomweb;
mod fhir;
mod helpers;
mod images;
mod matrix;
mod models;
mod ops;
mod pipeline;
mod reports;
mod review;
mod security;
mod storage;
