//! A machine behind a smart plug: the plug's availability makes it online or offline, its
//! power shows on the machine, and power held above the connection's `running_above_w` for
//! `running_after_s` makes it `running` (the rules are in [`crate::domain::busy`]; this
//! module feeds them and keeps the timer that decides a crossing nobody reports again).

use actix::prelude::*;
use chrono::Utc;

use super::MachineActor;
use crate::domain::busy::{PowerHold, Verdict};
use crate::domain::machine::{Input, MachineState, TelemetryUpdate};
use crate::domain::plug::{PlugReading, PowerSensing};

/// What the actor keeps of its plug.
#[derive(Default)]
pub(super) struct PlugState {
    hold: PowerHold,
    /// Decides a pending crossing of the threshold when its hold is over: a plug reports
    /// power every few seconds at best (Tasmota every `TelePeriod`), so the next reading may
    /// come much later.
    pub(super) timer: Option<SpawnHandle>,
}

/// A report of the machine's smart plug.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Sense(pub PlugReading);

impl Handler<Sense> for MachineActor {
    type Result = ();
    fn handle(&mut self, msg: Sense, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, ctx| act.sense(msg.0, ctx))
    }
}

impl MachineActor {
    fn sense(&mut self, reading: PlugReading, ctx: &mut Context<Self>) {
        if self.retired {
            return;
        }
        match reading {
            PlugReading::Availability(online) => {
                if !online {
                    // What it drew before it went away says nothing about now.
                    self.plug.hold.reset();
                    self.cancel_power_timer(ctx);
                }
                self.apply(&Input::Availability { online }, ctx);
            }
            PlugReading::Status { relay_on, power_w } => {
                let power = PowerSensing::effective_power(relay_on, power_w);
                // Any report is a sign of life, and the power is shown as it is.
                self.apply(&Input::Telemetry(TelemetryUpdate { power_w: power, relay_on, ..Default::default() }), ctx);
                // Without a threshold, power is shown but decides nothing.
                let (Some(sensing), Some(power)) = (PowerSensing::of(&self.identity.connection), power) else {
                    return;
                };
                let verdict = self.plug.hold.reading(
                    self.runs(),
                    power,
                    sensing.running_above_w,
                    sensing.running_after,
                    Utc::now(),
                );
                self.follow(verdict, ctx);
            }
        }
    }

    fn runs(&self) -> bool {
        self.live.reported == MachineState::Running
    }

    /// Acts on the power's verdict: flips the state, or waits out the hold.
    fn follow(&mut self, verdict: Verdict, ctx: &mut Context<Self>) {
        self.cancel_power_timer(ctx);
        match verdict {
            Verdict::Stay => {}
            Verdict::Flip(running) => {
                if running != self.runs() {
                    self.apply(&Input::PowerSensed { running }, ctx);
                }
            }
            Verdict::WaitUntil(due) => {
                let wait = (due - Utc::now()).to_std().unwrap_or_default();
                self.plug.timer = Some(ctx.run_later(wait, |act, ctx| {
                    act.plug.timer = None;
                    act.guarded(ctx, |act, ctx| act.hold_over(ctx))
                }));
            }
        }
    }

    /// The hold of a crossing is over: decide it, unless the plug went away meanwhile.
    fn hold_over(&mut self, ctx: &mut Context<Self>) {
        let sensing = PowerSensing::of(&self.identity.connection);
        match sensing {
            Some(sensing) if self.live.online && !self.retired => {
                let verdict = self.plug.hold.check(self.runs(), sensing.running_after, Utc::now());
                self.follow(verdict, ctx);
            }
            _ => self.plug.hold.reset(),
        }
    }

    fn cancel_power_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.plug.timer.take() {
            ctx.cancel_future(timer);
        }
    }
}
