/**
 * The EventBridge bus (`<stackName>-events`) the workflows' Notify states put their events on (`Source:
 * workspace-plugin-installer`), with an archive so a control plane that missed events can replay them.
 * The stack routes no events itself (the control plane adds its own rules); the archive keeps the
 * plugin events and the fleet rollout's (ROLLOUT_EVENT_TYPES).
 */
import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import { Construct } from 'constructs';
import { ROLLOUT_EVENT_TYPES } from '../../lambdas/core/events/event-sink.ts';
import { MAX_EVENT_BUS_NAME, stackScopedName } from './physical-names.ts';

export const EVENT_SOURCE = 'workspace-plugin-installer';

/** Every `DetailType` the workflows emit (statemachine/*.asl.json). */
export const PLUGIN_EVENT_TYPES = [
  'Plugin Installed',
  'Plugin Install Failed',
  'Plugin Rolled Back',
  'Plugin Uninstalled',
  'Plugin Operation Failed',
] as const;

/** What the archive keeps: every event the plugin workflows and the fleet rollout emit. */
export const ARCHIVED_EVENT_TYPES = [...PLUGIN_EVENT_TYPES, ...ROLLOUT_EVENT_TYPES] as const;

export interface PluginEventBusProps {
  /** Bus name. Default `<stackName>-events`, so two stacks in one region get their own bus. */
  readonly eventBusName?: string;
  /** Days the archive keeps events. Default 30. */
  readonly archiveDays?: number;
}

export class PluginEventBus extends Construct {
  readonly bus: events.EventBus;
  readonly archive: events.Archive;

  constructor(scope: Construct, id: string, props: PluginEventBusProps = {}) {
    super(scope, id);
    this.bus = new events.EventBus(this, 'Bus', {
      eventBusName: props.eventBusName ?? stackScopedName(this, 'events', MAX_EVENT_BUS_NAME),
      description: 'Plugin lifecycle events of workspace-plugin-installer (installed, failed, rolled back, uninstalled; fleet rollouts started, progressing, completed, halted)',
    });
    this.archive = this.bus.archive('Archive', {
      description: 'Replayable copy of the plugin lifecycle and fleet rollout events',
      eventPattern: { source: [EVENT_SOURCE], detailType: [...ARCHIVED_EVENT_TYPES] },
      retention: Duration.days(props.archiveDays ?? 30),
    });
  }
}
