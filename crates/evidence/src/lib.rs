//! Embeddings, vector store (Qdrant Edge | Qdrant server), PubMed and guidelines.
//! Server-only; its implementation lands with the evidence issue.
