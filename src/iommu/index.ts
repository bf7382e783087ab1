export * from "./acs.js";
export * from "./acs-quirks.js";
export * from "./domain.js";
export * from "./groups.js";
export * from "./iommu.js";
export * from "./iova.js";
