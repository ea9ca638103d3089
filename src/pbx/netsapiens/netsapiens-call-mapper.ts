import { createHash } from 'node:crypto';
import type { AgentRef } from '../../agents/agents.service.js';
import type { CallDirection, EndReason } from '../../calls/call-state.js';
import { toE164 } from '../../common/phone.js';
import type { ProviderCallEvent } from '../pbx-provider.js';
import { type NetsapiensCallRow, rowOrigCallId, rowPhase } from './netsapiens-webhook.js';

/**
 * Maps the objects of a NetSapiens `call` subscription delivery to canonical call events. Pure.
 *
 * Sources (see also netsapiens-webhook.ts):
 * - https://docs.ns-api.com/docs/event-subscriptions-1: model `call` posts every change of an active
 *   call (created, updated, removed) matching the subscription's filters; a removed call carries
 *   `"remove": "yes"`; the objects are those of the active-call resource.
 * - The field names. NetSapiens has sent the call model with the legacy active-call names
 *   (`orig_callid`, `term_callid`, `by_callid`, `orig_user`, `orig_domain`, `orig_from_user`,
 *   `orig_from_name`, `orig_req_user`/`orig_to_user`, `term_user`, `term_domain`, `time_start`,
 *   `time_answer`, `remove`…: a recorded delivery is in fixtures/ok/). The v2 reference documents the
 *   active-call resource (GET /domains/{domain}/calls, https://docs.ns-api.com/reference) with
 *   hyphenated names (`call-orig-call-id`, `call-term-call-id`, `call-orig-user`,
 *   `caller-id-number`, `call-dialed-number`, `call-start-datetime`, `call-answer-datetime`…). The
 *   docs do not say which of the two a v2 subscription posts, so both are read (legacy first).
 * - Times are `YYYY-MM-DD HH:MM:SS` in UTC (the platform's CDR convention); ISO strings with an
 *   offset are read as such; `0000-00-00 00:00:00` or empty means "not yet".
 *
 * Mapping (one object is one leg: the orig side and, once it rings somewhere, a term side):
 * - providerCallId = the orig call id. For a click-to-call this is the `call-id` we give
 *   POST /domains/{domain}/users/{user}/calls (the API reads and disconnects a call by that id, and
 *   "Reject Call" names it the orig call id), so originate and the webhooks name the same call.
 * - Every object → `ringing` (at time_start) with direction, numbers, caller name and the agent;
 *   an object with time_answer → `answered` (at time_answer); a removed object → `ended`, at the
 *   time we received it (the call model carries no release time): `completed` when answered,
 *   otherwise `missed` (inbound, internal) or `canceled` (outbound). A removed unanswered leg whose
 *   call still has another leg in the same delivery (another phone of a multi-ring, the leg that
 *   answered) only lost the race: it ends nothing. Known limit, from the model itself: a ring
 *   attempt removed in a delivery of its own (a queue ringing agents one after the other) ends the
 *   call early, and an answered leg removed by a transfer ends it as completed.
 * - Event keys are `ns:<leg>:<milestone>`, the leg being the term (else by, else orig) call id:
 *   the same leg reported in several snapshots gives the same `ringing`/`answered` keys, so the
 *   merge stays idempotent.
 * - The first leg of a click-to-call (the same user of ours on both sides: the platform ringing the
 *   agent's phone) gives `ringing` at that agent; its answer is not the call's answer and its
 *   removal after an answer ends nothing (the leg to the customer carries on).
 * - Direction from the company's side: the connection's domain. A side is ours when its domain is
 *   that domain and it names a user. Orig ours and term not → outbound; both ours → internal, but
 *   the same user on both sides is the first leg of a click-to-call (the platform calling the
 *   user's phone) → outbound; orig not ours → inbound.
 * - Agent: the user of our side that the call is for (term user of inbound and internal calls,
 *   orig user of outbound ones) as { provider: 'netsapiens', externalId: user, extension: user }.
 * - Numbers through toE164; what is not a number stays only when it is clearly an extension
 *   (2–8 digits), as the Asterisk mapper does; anything else is dropped.
 */

export interface NetsapiensMapOptions {
  /** The connection's NetSapiens domain. */
  domain: string;
  /** When the delivery arrived (times a removal). */
  receivedAt: Date;
  /** For numbers without a country code (default US). */
  defaultCountry?: Parameters<typeof toE164>[1];
}

const str = (v: unknown): string => (typeof v === 'string' ? v.trim() : typeof v === 'number' ? String(v) : '');

/** The first non-empty of several field names. */
function field(row: NetsapiensCallRow, ...names: string[]): string {
  for (const n of names) {
    const v = str(row[n]);
    if (v) return v;
  }
  return '';
}

/** A NetSapiens time: `YYYY-MM-DD HH:MM:SS` (UTC) or ISO; undefined when empty or zero. */
export function netsapiensTime(value: string): Date | undefined {
  if (!value || /^0{4}-0{2}-0{2}/.test(value)) return undefined;
  const plain = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)$/.exec(value);
  const ms = plain ? Date.parse(`${plain[1]}T${plain[2]}Z`) : Date.parse(value);
  return Number.isFinite(ms) ? new Date(ms) : undefined;
}

const sha = (v: string) => createHash('sha256').update(v).digest('hex');
/** An id short enough for our columns (a long SIP call id becomes a digest). */
const shortId = (id: string, max: number) => (id.length <= max ? id : `sha256:${sha(id)}`);

/** The provider call id of a row (its orig call id; a digest if longer than our column). */
export function netsapiensProviderCallId(row: NetsapiensCallRow): string {
  return shortId(rowOrigCallId(row), 128);
}

/** The user part of `sip:1001@domain`, or the value itself. */
function sipUser(value: string): string {
  const m = /^(?:sips?:)?([^@;]+)@/i.exec(value);
  return m ? m[1]! : value.replace(/^sips?:/i, '');
}

interface Side {
  user: string;
  domain: string;
  type: string;
}

interface Leg {
  row: NetsapiensCallRow;
  providerCallId: string;
  legKey: string;
  phase: 'removed' | 'answered' | 'ringing';
  start?: Date;
  answer?: Date;
}

export class NetsapiensCallMapper {
  private readonly domain: string;
  private readonly defaultCountry: Parameters<typeof toE164>[1];

  constructor(options: { domain: string; defaultCountry?: Parameters<typeof toE164>[1] }) {
    this.domain = options.domain.toLowerCase();
    this.defaultCountry = options.defaultCountry ?? 'US';
  }

  /** The call events of one delivery, in order. */
  map(rows: NetsapiensCallRow[], receivedAt: Date): ProviderCallEvent[] {
    const legs: Leg[] = rows.map((row) => {
      const origCallId = rowOrigCallId(row);
      const leg = field(row, 'term_callid', 'call-term-call-id') || field(row, 'by_callid', 'call-by-call-id');
      return {
        row,
        providerCallId: netsapiensProviderCallId(row),
        legKey: shortId(leg || origCallId, 80),
        phase: rowPhase(row),
        start: netsapiensTime(field(row, 'time_start', 'time_begin', 'call-start-datetime')),
        answer: netsapiensTime(field(row, 'time_answer', 'call-answer-datetime')),
      };
    });
    const out: ProviderCallEvent[] = [];
    for (const leg of legs) {
      const siblings = legs.filter((l) => l !== leg && l.providerCallId === leg.providerCallId);
      out.push(...this.mapLeg(leg, siblings, receivedAt));
    }
    return out;
  }

  private mapLeg(leg: Leg, siblings: Leg[], receivedAt: Date): ProviderCallEvent[] {
    const { row } = leg;
    const orig = this.side(row, 'orig');
    const term = this.side(row, 'term');
    const direction = this.direction(orig, term);
    const agentUser = direction === 'outbound' ? (this.ours(orig) ? orig.user : undefined) : this.agentOf(term, row);
    const agent: AgentRef | undefined = agentUser
      ? { provider: 'netsapiens', externalId: agentUser, extension: agentUser }
      : undefined;
    const base = { providerCallId: leg.providerCallId, direction, raw: row };
    const withAgent = agent ? { agent } : {};
    const key = (milestone: string) => `ns:${leg.legKey}:${milestone}`;
    const events: ProviderCallEvent[] = [];

    const from = this.number(field(row, 'orig_from_user', 'ani', 'orig_id', 'caller-id-number'));
    const to = this.number(
      field(row, 'orig_req_user', 'orig_to_user', 'dnis', 'call-dialed-number') ||
        sipUser(field(row, 'term_to_uri', 'call-term-uri')),
    );
    const callerName = this.name(field(row, 'orig_from_name', 'orig_name', 'call-orig-name'), from);
    // The platform ringing the agent's own phone for a click-to-call: the agent picking up is not
    // the call's answer (the customer's leg is), and that leg going away after it does not end it.
    // Its numbers describe that leg (the customer shown to the agent, the agent as destination),
    // not the call: they are left to the call's record (click-to-call) and the customer's leg.
    const callback = this.ours(orig) && this.ours(term) && orig.user === term.user;
    events.push({
      ...base,
      eventKey: key('ringing'),
      kind: 'ringing',
      at: leg.start ?? leg.answer ?? receivedAt,
      ...(from && !callback ? { from } : {}),
      ...(to && !callback ? { to } : {}),
      ...(callerName && !callback ? { callerName } : {}),
      ...withAgent,
    });
    if (leg.answer && !callback) {
      events.push({ ...base, eventKey: key('answered'), kind: 'answered', at: leg.answer, ...withAgent });
    }
    if (leg.phase === 'removed' && !(callback && leg.answer)) {
      // A leg that lost to another leg of the same call (multi-ring) ends nothing.
      const lostRace = !leg.answer && siblings.some((s) => s.phase !== 'removed' || s.answer);
      if (!lostRace) {
        const endReason: EndReason = leg.answer ? 'completed' : direction === 'outbound' ? 'canceled' : 'missed';
        const cause = [field(row, 'release_code'), field(row, 'release_text')].filter(Boolean).join(' ');
        const at = new Date(Math.max(receivedAt.getTime(), leg.answer?.getTime() ?? 0, leg.start?.getTime() ?? 0));
        events.push({
          ...base,
          eventKey: key('ended'),
          kind: 'ended',
          at,
          endReason,
          ...(cause ? { hangupCause: cause } : {}),
          ...withAgent,
        });
      }
    }
    return events;
  }

  private side(row: NetsapiensCallRow, which: 'orig' | 'term'): Side {
    const user =
      which === 'orig'
        ? field(row, 'orig_user', 'orig_sub', 'call-orig-user')
        : field(row, 'term_user', 'term_sub', 'call-term-user');
    const domain =
      which === 'orig' ? field(row, 'orig_domain', 'call-orig-domain') : field(row, 'term_domain', 'call-term-domain');
    const type = which === 'orig' ? field(row, 'orig_type') : field(row, 'term_type');
    return { user, domain, type };
  }

  private ours(side: Side): boolean {
    return (
      side.user !== '' &&
      side.user !== '*' &&
      side.domain.toLowerCase() === this.domain &&
      side.type.toLowerCase() !== 'gateway'
    );
  }

  private direction(orig: Side, term: Side): CallDirection {
    if (!this.ours(orig)) return 'inbound';
    if (!this.ours(term)) return 'outbound';
    // Both sides ours: the same user on both is the platform ringing the user for a click-to-call.
    return orig.user === term.user ? 'outbound' : 'internal';
  }

  /** The user a call rings at: the term user when ours, else the by user (a queue, a forward). */
  private agentOf(term: Side, row: NetsapiensCallRow): string | undefined {
    if (this.ours(term)) return term.user;
    const by = {
      user: field(row, 'by_user', 'by_sub', 'call-by-user'),
      domain: field(row, 'by_domain', 'call-by-domain'),
      type: field(row, 'by_type'),
    };
    return this.ours(by) ? by.user : undefined;
  }

  /** A caller name, unless it is only the number again. */
  private name(value: string, from: string | undefined): string | undefined {
    if (!value) return undefined;
    const digits = value.replace(/\D/g, '');
    if (digits && digits === value.replace(/[\s()+.-]/g, '') && from?.endsWith(digits.replace(/^1(?=\d{10}$)/, ''))) {
      return undefined;
    }
    return value;
  }

  private number(value: string): string | undefined {
    const v = sipUser(value);
    if (!v || /^(anonymous|unknown|restricted|private)$/i.test(v)) return undefined;
    const e164 = toE164(v, this.defaultCountry);
    if (e164) return e164;
    return /^\d{2,8}$/.test(v) ? v : undefined;
  }
}
