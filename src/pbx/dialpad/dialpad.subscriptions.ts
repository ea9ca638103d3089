import { PbxError, type PbxEnvironment } from '../pbx-provider.js';
import { dialpadRequest } from './dialpad.http.js';
import { dialpadTarget, readDialpadSettings, type DialpadConnectionLike } from './dialpad.settings.js';
import { DIALPAD_MAPPED_CALL_STATES, dialpadId, dialpadJsonBody, isRecord } from './dialpad.wire.js';

/**
 * Creating what makes Dialpad send us events (OpenAPI document of
 * https://github.com/dialpad/dialpad-python-sdk, `dialpad_api_spec.json`; schemas in
 * `src/dialpad/schemas/webhook.py`, `call_event_subscription.py`, `sms_event_subscription.py`):
 * - POST /api/v2/webhooks {hook_url, secret} → WebhookProto {id, hook_url, signature}.
 * - POST /api/v2/subscriptions/call {endpoint_id, call_states, enabled} → {id, …}.
 * - POST /api/v2/subscriptions/sms {endpoint_id, direction: "all", enabled} → {id, …}.
 * - DELETE /api/v2/subscriptions/{call|sms}/{id}, DELETE /api/v2/webhooks/{id}.
 * The webhook's id is named `endpoint_id` in the current schemas (a webhook or a websocket), while
 * the operations' descriptions (and the older API) say "A webhook_id is required": we send both,
 * with the same value. Subscriptions have no target, so they cover the whole company (both the
 * entry point calls and the operator calls of group calls, which the mapper needs).
 */

export interface DialpadSubscriptionIds {
  webhookId: string;
  callSubscriptionId: string;
  smsSubscriptionId: string;
}

function idOf(json: unknown, what: string): string {
  const id = isRecord(json) ? dialpadId(json.id) : undefined;
  if (!id) throw new PbxError('REJECTED', `Dialpad ${what} answered without an id`);
  return id;
}

/**
 * Creates the webhook (signed with `secret`) and the call and SMS subscriptions of a connection;
 * returns their ids for the connection's settings. When a step fails, what was created is deleted
 * again (best effort) and the failure is thrown.
 */
export async function subscribeDialpad(
  env: PbxEnvironment,
  connection: DialpadConnectionLike,
  request: { hookUrl: string; secret: string },
): Promise<DialpadSubscriptionIds> {
  if (request.secret.length < 16)
    throw new PbxError('REJECTED', 'The Dialpad webhook secret must have 16 characters or more.');
  const { base, token } = dialpadTarget(env, connection);
  const webhook = await dialpadRequest(env, `${base}/api/v2/webhooks`, {
    method: 'POST',
    token,
    body: { hook_url: request.hookUrl, secret: request.secret },
    what: 'POST /api/v2/webhooks',
  });
  const webhookId = idOf(webhook.json, 'POST /api/v2/webhooks');
  const created: Partial<DialpadSubscriptionIds> = { webhookId };
  try {
    const endpoint = { endpoint_id: webhookId, webhook_id: webhookId };
    const call = await dialpadRequest(env, `${base}/api/v2/subscriptions/call`, {
      method: 'POST',
      token,
      body: dialpadJsonBody({ call_states: [...DIALPAD_MAPPED_CALL_STATES], enabled: true }, endpoint),
      what: 'POST /api/v2/subscriptions/call',
    });
    created.callSubscriptionId = idOf(call.json, 'POST /api/v2/subscriptions/call');
    const sms = await dialpadRequest(env, `${base}/api/v2/subscriptions/sms`, {
      method: 'POST',
      token,
      body: dialpadJsonBody({ direction: 'all', enabled: true }, endpoint),
      what: 'POST /api/v2/subscriptions/sms',
    });
    created.smsSubscriptionId = idOf(sms.json, 'POST /api/v2/subscriptions/sms');
    return created as DialpadSubscriptionIds;
  } catch (error) {
    await unsubscribeDialpad(env, connection, created).catch(() => undefined);
    throw error;
  }
}

/**
 * Deletes a connection's subscriptions and webhook (the ids given, else those in its settings).
 * Already gone (404) counts as deleted.
 */
export async function unsubscribeDialpad(
  env: PbxEnvironment,
  connection: DialpadConnectionLike,
  ids?: Partial<DialpadSubscriptionIds>,
): Promise<void> {
  const settings = readDialpadSettings(connection.settings);
  const { base, token } = dialpadTarget(env, connection);
  const { webhookId, callSubscriptionId, smsSubscriptionId } = ids ?? settings;
  const remove = async (path: string, id: string | undefined) => {
    if (!id) return;
    if (!/^\d{1,20}$/.test(id)) throw new PbxError('REJECTED', `${id} is not a Dialpad id`);
    await dialpadRequest(env, `${base}${path}/${id}`, {
      method: 'DELETE',
      token,
      accept: [404],
      what: `DELETE ${path}`,
    });
  };
  await remove('/api/v2/subscriptions/call', callSubscriptionId);
  await remove('/api/v2/subscriptions/sms', smsSubscriptionId);
  await remove('/api/v2/webhooks', webhookId);
}
