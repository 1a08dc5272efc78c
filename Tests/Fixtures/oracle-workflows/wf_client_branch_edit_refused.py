with model.generate("The Eiffel Tower is in the city of", max_new_tokens=3) as tracer:
    for step in tracer.iter[:]:
        tok = model.lm_head.output[0, -1].argmax(dim=-1).item()
        if tok in [1, 2, 3]:
            model.transformer.h[0].output[0][:] = 0
