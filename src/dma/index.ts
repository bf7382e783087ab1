export * from "./device.js";
export * from "./direct.js";
export * from "./direction.js";
export * from "./dma-iommu.js";
export * from "./mapping.js";
