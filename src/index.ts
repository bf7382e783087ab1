/** Library entry: the public face of every subsystem. */
export * as analysis from "./analysis/index.js";
export * from "./core/index.js";
export * as dataplane from "./dataplane/index.js";
export * as dmabuf from "./dmabuf/index.js";
export * as exporters from "./export/index.js";
export * as importers from "./import/index.js";
export * as iommu from "./iommu/index.js";
export * as iommufd from "./iommufd/index.js";
export * from "./machine/index.js";
export * as nvme from "./nvme/index.js";
export * as p2pdma from "./p2pdma/index.js";
export * as pci from "./pci/index.js";
export * as perf from "./perf/index.js";
export * as rdma from "./rdma/index.js";
export * as scenario from "./scenario/index.js";
export * as tlp from "./tlp/index.js";
export * as vfio from "./vfio/index.js";
