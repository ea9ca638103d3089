import { Module } from '@nestjs/common';

/** The generic incoming webhook (Standard Webhooks), written to the inbox. */
@Module({})
export class IncomingWebhooksModule {}
