// Every migration, oldest first. `npm run migration:generate -- <Name>` adds new ones here.
// A landed migration is never edited: write a new one.
import { Init1763700000000 } from './1763700000000-init.js';
import { AccessControl1795237743921 } from './1795237743921-access-control.js';
import { CallsAgentsEvents1795238824253 } from './1795238824253-calls-agents-events.js';
import { PbxConnectionsWebhooksMessages1795244535843 } from './1795244535843-pbx-connections-webhooks-messages.js';
import { PbxConnectionRuntimeState1795245966395 } from './1795245966395-pbx-connection-runtime-state.js';
import { InboxBatchProcessing1795250000000 } from './1795250000000-inbox-batch-processing.js';
import { WebhookEndpoints1795260000000 } from './1795260000000-webhook-endpoints.js';
import { WebhookDeliveries1795260100000 } from './1795260100000-webhook-deliveries.js';
import { IncomingWebhooks1795260200000 } from './1795260200000-incoming-webhooks.js';

export const MIGRATIONS = [
  Init1763700000000,
  AccessControl1795237743921,
  CallsAgentsEvents1795238824253,
  PbxConnectionsWebhooksMessages1795244535843,
  PbxConnectionRuntimeState1795245966395,
  InboxBatchProcessing1795250000000,
  WebhookEndpoints1795260000000,
  WebhookDeliveries1795260100000,
  IncomingWebhooks1795260200000,
];
