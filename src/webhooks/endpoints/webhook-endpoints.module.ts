import { Module } from '@nestjs/common';

/** Outbound webhook endpoints: subscriptions, secrets, SSRF guard. */
@Module({})
export class WebhookEndpointsModule {}
