import nnsight
with model.scan("The Eiffel Tower is in the city of"):
    dim = model.transformer.h[0].output[0].shape[-1]
    dim = nnsight.save(dim)
    print(model.lm_head.output.shape)
print(dim)
