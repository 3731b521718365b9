-- saga: why the orchestrator parked a saga (status STUCK, no timer) instead of
-- running it: its stored row could not be loaded or decided, alone, in a timer
-- tick (issue 16 item 1; engine/orchestrator/saga_orch_handlers.c). NULL while
-- the saga runs; the next write of the saga's state clears it.
-- (0790: the orchfix helper's number inside the saga block.)
ALTER TABLE saga.sagas ADD COLUMN parked_error text;
