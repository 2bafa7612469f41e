/**
 * The event sink behind the workflows' Notify states (EventBridge PutEvents on AWS, a JSON-lines
 * file locally). The control plane listens for these to restart agents.
 */
export const EVENT_SOURCE = 'workspace-plugin-installer';

export type PluginEventType = 'Plugin Installed' | 'Plugin Install Failed' | 'Plugin Uninstalled' | 'Plugin Rolled Back' | 'Plugin Operation Failed';

/** What a fleet rollout puts on the bus (statemachine/rollout.asl.json), with counts. */
export const ROLLOUT_EVENT_TYPES = ['Plugin Rollout Started', 'Plugin Rollout Progress', 'Plugin Rollout Completed', 'Plugin Rollout Halted'] as const;

export interface PutEventsEntry {
  Source: string;
  DetailType: string;
  Detail: unknown;
  EventBusName?: string;
}

export interface EventSink {
  putEvents(entries: PutEventsEntry[]): Promise<void>;
}
