/**
 * The data plane: memory behind BARs and system RAM, and the DMA engine that moves bytes between
 * them as TLPs over the fabric's links (with the TLP codec), observable as traces and events.
 */
export * from "./bar-memory.js";
export * from "./engine.js";
export * from "./events.js";
export * from "./route.js";
export * from "./sparse.js";
export * from "./trace.js";
