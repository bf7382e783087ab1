// perf/: PCIe link bandwidth math, flow sharing and transfer timing (pcie-bandwidth.md).
export * from "./link.js";
export * from "./path.js";
export * from "./throughput.js";
export * from "./tlp-size.js";
export * from "./validation.js";
