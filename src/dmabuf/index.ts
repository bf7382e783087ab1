export * from "./dma-buf.js";
export * from "./importer.js";
export * from "./phys-vec.js";
