import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AgentsModule } from '../agents/agents.module.js';
import { CallApplyService } from './call-apply.service.js';
import { CallCommandsService } from './call-commands.service.js';
import { CallEventEntity } from './call-event.entity.js';
import { CallQueriesService } from './call-queries.service.js';
import { CallEntity } from './call.entity.js';
import { CallsController } from './calls.controller.js';

@Module({
  imports: [TypeOrmModule.forFeature([CallEntity, CallEventEntity]), AgentsModule],
  controllers: [CallsController],
  providers: [CallApplyService, CallQueriesService, CallCommandsService],
  exports: [CallApplyService, CallQueriesService, CallCommandsService],
})
export class CallsModule {}
