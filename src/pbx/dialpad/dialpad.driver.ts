import {
  PbxDriver,
  PbxError,
  PbxProvider,
  type InboundWebhook,
  type OriginateRequest,
  type OriginateResult,
  type PbxEnvironment,
  type ProviderCallStatus,
  type VerifiedWebhook,
  type WebhookRecords,
} from '../pbx-provider.js';
import { dialpadRequest } from './dialpad.http.js';
import { dialpadWebhookToken, verifyDialpadJwt } from './dialpad.jwt.js';
import { freshnessWindow } from '../webhook-freshness.js';
import { dialpadEventId, dialpadEventKind, mapDialpadEvent } from './dialpad.mapper.js';
import {
  DIALPAD_CAPABILITIES,
  dialpadSecretsSchema,
  dialpadSettingsSchema,
  dialpadTarget,
  type DialpadConnection,
  type DialpadSecrets,
  type DialpadSettings,
} from './dialpad.settings.js';
import { DIALPAD_ENDED_STATES, dialpadId, dialpadJsonBody, dialpadTime, isRecord, text } from './dialpad.wire.js';

/**
 * The Dialpad driver (API v2 over HTTPS, events by signed webhooks).
 *
 * Documentation followed:
 * - API v2 reference, as Dialpad's OpenAPI document and generated SDK:
 *   https://github.com/dialpad/dialpad-python-sdk (`dialpad_api_spec.json`,
 *   `src/dialpad/resources/calls_resource.py`, `src/dialpad/schemas/call.py`), mirrored at
 *   https://developers.dialpad.com/reference.
 * - Call events: https://developers.dialpad.com/docs/call-events-logging ; SMS events:
 *   https://developers.dialpad.com/docs/sms-events ; OAuth: https://developers.dialpad.com/docs/oauth.
 *
 * Commands:
 * - originate: POST /api/v2/call ("Call -- Initiate via Ring", RingCallMessage {user_id,
 *   phone_number, outbound_caller_id, custom_data}) → RingCallProto {call_id}. It rings the agent's
 *   Dialpad devices, then dials the customer. `call_id` is the providerCallId: the call's events
 *   carry the same `call_id` (it is the user's own call, without an entry point), so the mapper
 *   gives them that providerCallId. Our call id rides in `custom_data` ("passed through to any
 *   subscribed call events") as `{"switchboard_call_id": "…"}`, for tracing. Rate limit: 5 a
 *   minute. (POST /api/v2/users/{id}/initiate_call answers only the device, no call id: not used.)
 * - hangup: PUT /api/v2/call/{id}/actions/hangup ("Call Actions -- Hang up").
 * - status: GET /api/v2/call/{id} ("Call -- Get", CallProto: `state`, `date_ended`); rate limit 10
 *   a minute.
 * - sendDtmf: unsupported (no such operation in API v2).
 * - testCredentials: GET /api/v2/company ("Company -- Get"; needs a company admin API key or an
 *   admin's token).
 */

export class DialpadProvider extends PbxProvider {
  readonly capabilities = DIALPAD_CAPABILITIES;

  constructor(
    private readonly connection: DialpadConnection,
    private readonly env: PbxEnvironment,
  ) {
    super();
  }

  async testCredentials(): Promise<{ detail: string }> {
    const { base, token } = dialpadTarget(this.env, this.connection);
    const res = await dialpadRequest(this.env, `${base}/api/v2/company`, {
      method: 'GET',
      token,
      what: 'GET /api/v2/company',
    });
    const company = isRecord(res.json) ? res.json : {};
    const name = text(company.name);
    const id = dialpadId(company.id);
    return { detail: `Dialpad company ${name ? `"${name}"` : '(unnamed)'}${id ? ` (id ${id})` : ''}` };
  }

  verifyWebhook(request: InboundWebhook): VerifiedWebhook {
    const secret = this.connection.secrets?.webhookSecret;
    if (typeof secret !== 'string' || !secret) {
      throw new PbxError('AUTH', 'Dialpad webhook: the connection has no webhook secret; unsigned events are refused');
    }
    const { claims, payloadText } = verifyDialpadJwt(dialpadWebhookToken(request), secret, freshnessWindow(this.env));
    const eventId = dialpadEventId(claims, payloadText);
    // Read it once now, so that a verified event that cannot be read is refused before it is stored.
    const records = mapDialpadEvent(claims);
    return { eventId, kind: dialpadEventKind(claims), payload: claims, records };
  }

  parseWebhook(webhook: VerifiedWebhook): WebhookRecords {
    return mapDialpadEvent(webhook.payload);
  }

  override async originate(request: OriginateRequest): Promise<OriginateResult> {
    const userId = request.agent.externalId?.trim();
    if (!userId) {
      throw new PbxError('REJECTED', 'The agent has no Dialpad user id (user mapping): cannot place the call.');
    }
    if (!/^\d{1,20}$/.test(userId)) {
      throw new PbxError(
        'REJECTED',
        `The agent's Dialpad user id ${JSON.stringify(userId)} is not a Dialpad id (digits).`,
      );
    }
    const { base, token } = dialpadTarget(this.env, this.connection);
    const body: Record<string, unknown> = {
      phone_number: request.to,
      custom_data: JSON.stringify({ switchboard_call_id: request.callId }),
    };
    if (request.callerId) body.outbound_caller_id = request.callerId;
    const res = await dialpadRequest(this.env, `${base}/api/v2/call`, {
      method: 'POST',
      token,
      body: dialpadJsonBody(body, { user_id: userId }),
      what: 'POST /api/v2/call',
    });
    const callId = isRecord(res.json) ? dialpadId(res.json.call_id) : undefined;
    // The call is under way: never TRANSIENT here, a retry would ring the agent again.
    if (!callId) throw new PbxError('REJECTED', 'Dialpad accepted the call but answered no call_id.');
    return { providerCallId: callId, raw: res.json };
  }

  override async hangup(providerCallId: string): Promise<void> {
    const id = this.callId(providerCallId);
    const { base, token } = dialpadTarget(this.env, this.connection);
    await dialpadRequest(this.env, `${base}/api/v2/call/${id}/actions/hangup`, {
      method: 'PUT',
      token,
      what: 'PUT /api/v2/call/{id}/actions/hangup',
    });
  }

  override async status(providerCallId: string): Promise<ProviderCallStatus> {
    const id = this.callId(providerCallId);
    const { base, token } = dialpadTarget(this.env, this.connection);
    const res = await dialpadRequest(this.env, `${base}/api/v2/call/${id}`, {
      method: 'GET',
      token,
      what: 'GET /api/v2/call/{id}',
    });
    const call = isRecord(res.json) ? res.json : {};
    const state = text(call.state)?.toLowerCase() ?? 'unknown';
    return { state, ended: DIALPAD_ENDED_STATES.has(state) || dialpadTime(call.date_ended) !== undefined };
  }

  private callId(providerCallId: string): string {
    const id = providerCallId.trim();
    if (!/^\d{1,20}$/.test(id))
      throw new PbxError('NOT_FOUND', `${JSON.stringify(providerCallId)} is not a Dialpad call id.`);
    return id;
  }
}

export class DialpadDriver extends PbxDriver<DialpadSettings, DialpadSecrets> {
  readonly provider = 'dialpad' as const;
  readonly capabilities = DIALPAD_CAPABILITIES;
  readonly settingsSchema = dialpadSettingsSchema;
  readonly secretsSchema = dialpadSecretsSchema;
  /** One route: `/webhooks/dialpad/<connectionId>` receives call and SMS events alike. */
  readonly webhookRoutes = [''] as const;

  connect(connection: DialpadConnection, env: PbxEnvironment): DialpadProvider {
    return new DialpadProvider(connection, env);
  }
}
