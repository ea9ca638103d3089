import type { WebhookRecords } from '../../pbx/pbx-provider.js';

/**
 * Partitions of the inbox: a row's partition is a hash of the call it is about, set at ingest.
 * A partition is held by one transaction at a time (an advisory transaction lock), so the rows of
 * one call are applied in the order received by every worker of every instance. The number is a
 * property of the stored rows, not a setting: changing it would move calls between partitions.
 */
export const INBOX_PARTITIONS = 64;

/**
 * The key that orders a row: the call it is about (`<connection>:<provider call id>`, as
 * `calls.call_key` has it; a voicemail goes with its call), else the message, else the event.
 */
export function inboxCallKey(connectionId: string, eventId: string, records: WebhookRecords | null): string {
  const providerCallId = records?.calls[0]?.providerCallId ?? records?.voicemails[0]?.providerCallId;
  if (providerCallId) return `${connectionId}:${providerCallId}`.slice(0, 300);
  const messageId = records?.messages[0]?.providerMessageId;
  if (messageId) return `${connectionId}:message:${messageId}`.slice(0, 300);
  return `${connectionId}:event:${eventId}`.slice(0, 300);
}

/** FNV-1a (32 bit) of the key, modulo INBOX_PARTITIONS. */
export function inboxPartition(callKey: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < callKey.length; i++) {
    h ^= callKey.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % INBOX_PARTITIONS;
}

/** The records as stored in `webhook_inbox.records` (dates as ISO strings). */
export function recordsToJson(records: WebhookRecords): string {
  return JSON.stringify(records);
}

/** The records read back from `webhook_inbox.records`: their times are Dates again. */
export function recordsFromJson(stored: unknown): WebhookRecords {
  const r = stored as WebhookRecords;
  const at = <T extends { at: Date | string }>(x: T): T => ({ ...x, at: new Date(x.at) });
  return { calls: r.calls.map(at), voicemails: r.voicemails.map(at), messages: r.messages.map(at) };
}
