//! PubMed: the E-utilities client, the XML importer and abstract chunking.

pub mod chunk;
pub mod eutils;
pub mod xml;

pub use chunk::chunk_article;
pub use eutils::{EutilsClient, EutilsConfig, SearchResult};
pub use xml::{parse, parse_str, AbstractSection, Article, ParsedSet};
