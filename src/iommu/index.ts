export * from "./acs.js";
export * from "./acs-quirks.js";
export * from "./groups.js";
