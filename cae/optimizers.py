"""Adam applied by TensorFlow's fused kernel: Keras's Adam, traced in a fraction of the time.

Keras 3 writes Adam's update for every backend as a dozen generic ops per variable (casts, powers, the two moment
updates, the step), and TensorFlow traces each of them through Keras's op dispatch when a model's train step is
traced: half of that trace is the optimizer (a py-spy profile of a trial worker: ``apply_gradients`` 2.8 of the
train step's 5.7 s of tracing over 8 trials). :class:`FusedAdam` makes one ``ResourceApplyAdam`` per variable instead,
the kernel TensorFlow's own Keras 2 Adam used. It computes Keras's update, in the same form (``m += (g - m)(1 - b1)``,
``v += (g^2 - v)(1 - b2)``, ``w -= m * lr * sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v) + eps)``), so the two agree to
float rounding (tested), not bit for bit: the kernel may fuse a multiply and an add.

Its variables are Adam's (iterations, learning rate, one first and one second moment per weight), so a checkpoint
holds the same state, and a model saved with it loads with it once this module is imported (:mod:`cae.checkpoint`
and :func:`cae.models.load_model` do). AMSGrad and sparse gradients go through Keras's own update.
"""

from __future__ import annotations

from typing import Any

from cae.runtime import keras, tf


@keras.saving.register_keras_serializable(package="caesweep")
class FusedAdam(keras.optimizers.Adam):
    """:class:`keras.optimizers.Adam` with each variable's update made by TensorFlow's ``ResourceApplyAdam``."""

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices) or keras.backend.backend() != "tensorflow":
            super().update_step(gradient, variable, learning_rate)
            return
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )
