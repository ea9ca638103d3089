import type { AgentRef } from '../agents/agents.service.js';
import type { CallFacts } from './call-state.js';

/**
 * The canonical call event every provider adapter produces (DESIGN.md "The flow of a call"):
 * the facts, plus where it comes from and how it names the agent.
 */
export interface CallEvent extends Omit<CallFacts, 'agentId'> {
  companyId: string;
  /** asterisk | dialpad | twilio | netsapiens | manual */
  provider: string;
  connectionId?: string | null;
  providerCallId: string;
  /** The id to give the call if this event is the one that creates it (click-to-call). */
  callId?: string;
  agent?: AgentRef;
  /** The provider's payload, kept in the timeline (masked when shown). */
  raw?: unknown;
}
