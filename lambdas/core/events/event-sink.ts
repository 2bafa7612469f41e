/**
 * The event sink behind the workflows' Notify states (EventBridge PutEvents on AWS, a JSON-lines
 * file locally). The control plane listens for these to restart agents.
 */
export const EVENT_SOURCE = 'workspace-plugin-installer';

export type PluginEventType = 'Plugin Installed' | 'Plugin Install Failed' | 'Plugin Uninstalled' | 'Plugin Rolled Back' | 'Plugin Operation Failed';

export interface PutEventsEntry {
  Source: string;
  DetailType: string;
  Detail: unknown;
  EventBusName?: string;
}

export interface EventSink {
  putEvents(entries: PutEventsEntry[]): Promise<void>;
}
