/** Usage accounting: the data model, the stores and the StreamUsage handler (`@sluice/control-plane/usage`). */
export * from './model.js';
export * from './store.js';
export * from './redis-store.js';
export * from './usage-streams.js';
export type { UsageRow, UsageSeries, UsageSummary } from './query.js';
