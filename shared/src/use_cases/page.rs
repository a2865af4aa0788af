//! Promise 3: a Page Meta blocked stays silent until Meta unblocks it; pause, resume and re-queue
//! live here, for the sender's probe, the policy webhook and the sweep alike.
