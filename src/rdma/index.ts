/**
 * RDMA importer side (rdma-data-direct.md): IB core dma-buf MRs (`ib_umem_dmabuf`), the mlx5 driver
 * with multi-path DMA ("data direct"), the uverbs ioctl path and rdma-core's library calls, and the
 * data-plane translation a DMA engine asks for.
 */
export * from "./core/device.js";
export * from "./core/flags.js";
export * from "./core/umem-dmabuf.js";
export * from "./core/uverbs.js";
export * from "./dataplane.js";
export * from "./events.js";
export * from "./mlx5/data-direct.js";
export * from "./mlx5/device.js";
export * from "./mlx5/mkey.js";
export * from "./mlx5/mr.js";
export * from "./mlx5/st.js";
export * from "./profile.js";
export * from "./rdma.js";
export * from "./sync.js";
export * from "./test-exporter.js";
export * from "./translate.js";
export * from "./uapi.js";
export * from "./user-memory.js";
export * from "./verbs.js";
