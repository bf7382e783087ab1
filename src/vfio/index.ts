export * from "./check-feature.js";
export * from "./dma-buf.js";
export * from "./events.js";
export * from "./features.js";
export * from "./nvgrace-gpu.js";
export * from "./uapi/vfio.js";
export * from "./vfio.js";
