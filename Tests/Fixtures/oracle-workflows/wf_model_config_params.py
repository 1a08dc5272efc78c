print(model.config.layer_norm_epsilon, model.config.n_layer, model.config.n_head, model.config.vocab_size, model.config.activation_function)
w = model.transformer.h[0].mlp.c_fc.weight
print(w.shape, round(w.sum().item(), 3))
print(model.lm_head.weight.shape)
